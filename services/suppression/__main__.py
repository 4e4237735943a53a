"""`python -m services.suppression`: run the suppression service (configured by environment)."""

from services.suppression.app import build
from shared.runtime import main

if __name__ == "__main__":
    main("suppression", build)
