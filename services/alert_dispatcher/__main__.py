"""`python -m services.alert_dispatcher`: run the alert dispatcher, configured by environment
variables."""

from services.alert_dispatcher.app import build
from shared.runtime import main

if __name__ == "__main__":
    main("alert_dispatcher", build)
