"""`python -m services.flow_executor`: run the flow executor, configured by environment."""

from services.flow_executor.app import build
from shared.runtime import main

if __name__ == "__main__":
    main("flow_executor", build)
