from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    pass
