"""`python -m services.consent`: run the consent service, configured by environment variables."""

from services.consent.app import build
from shared.runtime import main

if __name__ == "__main__":
    main("consent", build)
