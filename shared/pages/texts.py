"""The words on pages and in mails that handlers choose between (W1, W3).

Marked with `N_` so that `pybabel extract -k N_` puts them in the catalogue; they are
translated when a page or mail is rendered (`shared.pages.gettext`)."""

from __future__ import annotations


def N_(message: str) -> str:
    return message


STATUS = {
    "subscribed": N_("Subscribed"),
    "unsubscribed": N_("Unsubscribed"),
    "never_subscribed": N_("Not subscribed"),
}

INVALID_TITLE = N_("This link does not work")
INVALID_TEXT = N_(
    "The link is incomplete or was changed on the way. Nothing was changed. Open the link"
    " from the email again, or copy the whole address into your browser."
)
EXPIRED_TITLE = N_("This link has expired")
EXPIRED_TEXT = N_(
    "Confirmation links work for %(days)s days. Nothing was changed. We can send you a new"
    " email with a fresh link."
)
SEND_NEW = N_("Send me a new email")
RENEWED_TITLE = N_("A new email is on its way")
RENEWED_TEXT = N_("Check your inbox for the new confirmation email and press its button.")

CONFIRM_TITLE = N_("Confirm your subscription")
CONFIRM_ASK = N_("Press the button to confirm that you want email from %(name)s.")
CONFIRM_ASK_LIST = N_(
    "Press the button to confirm that you want the list “%(list)s” from %(name)s."
)
CONFIRM_BUTTON = N_("Yes, subscribe me")
CONFIRMED_TITLE = N_("Subscription confirmed")
CONFIRMED_TEXT = N_("Thank you: you are subscribed.")
ALREADY_CONFIRMED_TITLE = N_("Already confirmed")
ALREADY_CONFIRMED_TEXT = N_("You confirmed this subscription before. There is nothing more to do.")

UNSUBSCRIBE_TITLE = N_("Unsubscribe")
UNSUBSCRIBE_ASK = N_("Stop receiving email from %(name)s?")
UNSUBSCRIBE_ASK_LIST = N_("Stop receiving the list “%(list)s” from %(name)s?")
UNSUBSCRIBE_BUTTON = N_("Unsubscribe")
UNSUBSCRIBED_TITLE = N_("You are unsubscribed")
UNSUBSCRIBED_TEXT = N_("You will no longer receive these emails.")
MANAGE_PREFERENCES = N_("Manage your preferences instead")
CHANGED_MIND = N_("Changed your mind? Manage your preferences")

PREFERENCES_TITLE = N_("Your email and text preferences")
UNKNOWN_CHOICE = N_("That choice is not one we offer. Nothing was changed.")
EMAIL_KEEP = N_("Send me email")
EMAIL_KEEP_HINT = N_("You receive email from %(name)s.")
EMAIL_USER = N_("Stop email from %(sender)s only")
EMAIL_USER_HINT = N_("Other senders of %(client)s and of %(name)s may still email you.")
EMAIL_CLIENT = N_("Stop email from %(client)s")
EMAIL_CLIENT_HINT = N_(
    "Every sender of %(client)s stops; the rest of %(name)s may still email you."
)
EMAIL_GROUP = N_("Stop all email from %(name)s")
EMAIL_GROUP_HINT = N_("Nothing more from any sender or brand of %(name)s.")
PENDING_CONFIRMATION = N_(
    "Waiting for your confirmation: press the button in the email we sent you"
)
SMS_START_BY_TEXT = N_(
    "Text messages can only be stopped here: consent to them belongs to your phone number."
    " To receive them, text START to us from that number."
)
SMS_MARKETING = N_("Marketing texts")
SMS_MARKETING_HINT = N_("Offers and news by text message; includes service texts.")
SMS_TRANSACTIONAL = N_("Service texts")
SMS_TRANSACTIONAL_HINT = N_("Order and delivery updates by text message.")
WHAT_EMAIL = N_("Email")
WHAT_EMAIL_FROM = N_("Email from %(who)s")
WHAT_LIST = N_("List “%(list)s”")
CHANGE = N_("%(what)s: now %(status)s")
BLOCKED = N_("%(what)s: could not be changed (%(reason)s)")

ALERTS_CONFIRM_TITLE = N_("Confirm internal alerts")
ALERTS_CONFIRM_ASK = N_("Press the button to receive internal alerts from %(name)s at %(email)s.")
ALERTS_CONFIRM_BUTTON = N_("Confirm alerts")
ALERTS_CONFIRMED_TITLE = N_("Alerts confirmed")
ALERTS_CONFIRMED_TEXT = N_("You will receive internal alerts from %(name)s.")
ALERTS_ALREADY_TEXT = N_("You already receive internal alerts from %(name)s.")
ALERTS_OUTDATED_TITLE = N_("This link is no longer valid")
ALERTS_OUTDATED_TEXT = N_(
    "You stopped these alerts, or a newer confirmation email was sent. Nothing was changed."
    " Ask to be added to the alert again to receive a new email."
)
ALERTS_STOP_TITLE = N_("Stop internal alerts")
ALERTS_STOP_ASK = N_("Stop receiving internal alerts from %(name)s?")
ALERTS_STOP_BUTTON = N_("Stop alerts")
ALERTS_STOPPED_TITLE = N_("Alerts stopped")
ALERTS_STOPPED_TEXT = N_("You will no longer receive internal alerts from %(name)s.")

MAIL_CONFIRM_SUBJECT = N_("Please confirm your subscription")
MAIL_CONFIRM_TEXT = N_("Please confirm that you want to receive email from %(name)s.")
MAIL_CONFIRM_TEXT_LIST = N_(
    "Please confirm that you want to receive the list “%(list)s” from %(name)s."
)
MAIL_CONFIRM_BUTTON = N_("Confirm subscription")
MAIL_CONFIRM_FOOTNOTE = N_(
    "If you did not ask for this, ignore this email: you will not be subscribed. The link"
    " works for %(days)s days."
)
MAIL_ALERTS_SUBJECT = N_("Confirm internal alerts from %(name)s")
MAIL_ALERTS_TEXT = N_("You were added as a recipient of internal alerts from %(name)s.")
MAIL_ALERTS_FOOTNOTE = N_(
    "If you did not expect this, ignore this email: you will receive nothing. The link"
    " works for %(days)s days."
)
MAIL_OPTOUT_SUBJECT = N_("You are unsubscribed")
MAIL_OPTOUT_TEXT = N_("You will no longer receive email from %(name)s.")
MAIL_OPTOUT_BUTTON = N_("Subscribe again")
MAIL_OPTOUT_FOOTNOTE = N_(
    "Unsubscribed by mistake? The button opens your preferences, where you can subscribe again."
)
ALERT_FOOTER = N_("Stop receiving these alerts")
