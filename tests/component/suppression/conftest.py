"""Consent and suppression run as real processes once for this folder's modules."""

from tests.component.consent.support import acct, api, services_fixture, tail

services = services_fixture()

__all__ = ["acct", "api", "services", "tail"]
