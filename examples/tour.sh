#!/usr/bin/env bash
# The README's ten-minute tour, command for command (tests/unit/test_readme_tour.py keeps
# the two the same; tests/e2e/test_readme_tour.py runs this file against a fresh
# `consentflow dev`). Run it, or paste it, in the repository's folder with the virtualenv
# active while `consentflow dev` runs in another shell; for a `consentflow dev --var DIR`,
# set CONSENTFLOW_VAR=DIR first. It waits where a step needs the one before applied (the
# services apply what is published within a second or so), at most 30 s each.

eval "$(consentflow env)"   # the settings `consentflow dev` printed
# GET an API path as the account, retrying for up to 30 s while it is not there yet (404)
get() { curl -sf --retry 30 --retry-delay 1 --retry-all-errors -w '\n' \
  -H "Authorization: Bearer $CONSENTFLOW_API_KEY" "$1/accounts/$CONSENTFLOW_ACCOUNT/$2"; }

# save a flow: an NPS score of 6 or less texts the person and holds an alert for review
consentflow publish flow-definitions examples/flow-definitions.json
get "$CONSENTFLOW_FLOW_EXECUTOR_API_URL" flows/nps/activity   # saved: no activity yet

# Ada subscribes to SMS marketing through a signup form
consentflow publish consent-commands examples/consent-commands.json

# her consent, over HTTP (once applied) and from the command line
get "$CONSENTFLOW_CONSENT_API_URL" profiles/ada/consent
consentflow consent show ada

# she leaves a score of 3; the flow requests its text on an output topic
consentflow publish profile-events examples/profile-events.json
consentflow tail message-requests --from-beginning -n 1 --timeout 30

# the executor's decisions: the text was sent (a message request), the alert waits for review
get "$CONSENTFLOW_FLOW_EXECUTOR_API_URL" flows/nps/activity
consentflow reviews list
consentflow consent explain ada --channel sms --purpose transactional

# the same in a browser: the operator console, which `consentflow dev` runs at the address
# it printed (`consentflow console` runs one against the services named above); sign in
# with the account and its key, then open the review queue to approve or reject the alert
consentflow console --check
curl -sf "$CONSENTFLOW_CONSOLE_URL/sign-in" | grep -o 'Sign in to the console'
