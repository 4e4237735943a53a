"""`python -m services.flow_executor`: run the flow_executor service, configured by environment variables."""

from services.flow_executor.app import build
from shared.runtime import main

if __name__ == "__main__":
    main("flow_executor", build)
