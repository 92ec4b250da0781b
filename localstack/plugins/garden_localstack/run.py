"""Start LocalStack's runtime (`localstack.runtime.main`) with the gateway bound to loopback.

LocalStack's default gateway server (twisted) creates its IPv4 listener without an interface, so
`GATEWAY_LISTEN=127.0.0.1:4566` still listens on 0.0.0.0. This launcher gives the listener the
host named in `GATEWAY_LISTEN` for its port, then runs the runtime unchanged. The hypercorn server
does bind the host, but it waits for pending SQS long polls at shutdown (SIGTERM then takes as long
as the longest `WaitTimeSeconds`), while twisted stops in a few seconds.
"""

import runpy

from twisted.internet import endpoints

_TCP4ServerEndpoint = endpoints.TCP4ServerEndpoint


def _listen_host(port: int) -> str:
    from localstack import config

    for host_and_port in config.GATEWAY_LISTEN:
        if host_and_port.port == port and not config.is_ipv6_address(host_and_port.host):
            return host_and_port.host
    return "127.0.0.1"


class LoopbackTCP4ServerEndpoint(_TCP4ServerEndpoint):
    """A TCP4 server endpoint that, given no interface, binds the host GATEWAY_LISTEN names."""

    def __init__(self, reactor, port, backlog=50, interface=""):
        super().__init__(reactor, port, backlog, interface or _listen_host(port))


def main() -> None:
    endpoints.TCP4ServerEndpoint = LoopbackTCP4ServerEndpoint
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
