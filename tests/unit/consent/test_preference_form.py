"""The preference centre's form, decided without a service (W2, C10): saving the page as
it is shown changes nothing, and every choice offered leads to exactly the level asked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.consent.domain.model import ProfileConsent, Slot
from services.consent.pages import Who, email_choice, preference_acts

STATUS = st.sampled_from(["subscribed", "unsubscribed", "never_subscribed"])
WHO = st.sampled_from(
    [Who("Acme", None, None), Who("Acme", "shoes", None), Who("Acme", "shoes", "outlet")]
)


@st.composite
def states(draw) -> ProfileConsent:
    slots = {
        "email": Slot(draw(STATUS)),
        "sms_marketing": Slot(draw(STATUS)),
        "sms_transactional": Slot(draw(STATUS)),
        "scope:client:shoes": Slot(draw(STATUS)),
        "scope:user:shoes/outlet": Slot(draw(STATUS)),
    }
    for list_id in draw(st.lists(st.sampled_from(["deals", "news", "events"]), unique=True)):
        slots[f"list:{list_id}"] = Slot(draw(STATUS))
    return ProfileConsent(slots=slots, phone_number="+4915112345678")


def shown_form(state: ProfileConsent, who: Who, lists: list[str]) -> dict[str, list[str]]:
    """What the browser sends when the person presses Save without touching anything."""
    form: dict[str, list[str]] = {
        "lists_shown": lists,
        "list": [x for x in lists if state.lists.get(x) == "subscribed"],
    }
    if (choice := email_choice(state, who)) is not None:
        form["email"] = [choice]
    for slot in ("sms_marketing", "sms_transactional"):
        if state.status(slot) == "subscribed":
            form[slot] = ["on"]
    return form


@given(states(), WHO, st.lists(st.sampled_from(["deals", "news", "events"]), unique=True))
def test_w2_saving_the_page_as_shown_changes_nothing(state, who, named) -> None:
    lists = sorted(set(state.lists) | set(named))
    assert preference_acts(state, shown_form(state, who, lists), who, lists) == []


@given(states(), WHO, st.sampled_from(["keep", "user", "client", "group"]))
def test_w2_c10_each_level_offered_acts_at_that_level_only(state, who, choice) -> None:
    lists = sorted(state.lists)
    form = {**shown_form(state, who, lists), "email": [choice]}  # only the email choice
    acts = preference_acts(state, form, who, lists)
    offered = {"keep", "group"} | ({"client"} if who.client_id else set())
    offered |= {"user"} if who.user_id else set()
    if choice not in offered:
        assert acts is None
        return
    assert acts is not None
    assert all(a.method == "preference_center" and a.channel == "email" for a in acts)
    unsubscribes = [a.scope for a in acts if a.action == "unsubscribe"]
    if choice == email_choice(state, who):
        assert acts == []
    elif choice == "keep":
        assert unsubscribes == []
    else:
        level = {"group": "group", "client": who.client_scope, "user": who.user_scope}[choice]
        assert unsubscribes == [level]
        # Opt-outs below the chosen level are left as they are.
        if choice == "client":
            assert who.user_scope not in [a.scope for a in acts]


def test_w2_a_list_or_choice_the_page_did_not_offer_is_refused() -> None:
    state = ProfileConsent(slots={"email": Slot("subscribed")})
    who = Who("Acme", None, None)
    assert preference_acts(state, {"email": ["client"]}, who, []) is None
    assert preference_acts(state, {"list": ["secret"]}, who, ["deals"]) is None
    assert preference_acts(state, {"lists_shown": ["secret"]}, who, ["deals"]) is None
