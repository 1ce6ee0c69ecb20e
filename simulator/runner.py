"""Running the simulator: in the foreground for the CLI, or in a background thread on a free port for tests."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from simulator.config import SimulatorConfig
from simulator.server import create_app
from simulator.state import Simulation


def uvicorn_config(app: Starlette, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn with uvloop and httptools when installed (they are, with uvicorn[standard]); no access log."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=1,
    )


def serve(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Serve until interrupted (SIGINT/SIGTERM)."""
    uvicorn.Server(uvicorn_config(create_app(config), host, port, log_level="info")).run()


class BackgroundSimulator:
    """A simulator served by uvicorn in a daemon thread, on a port the OS picks unless one is given.

    with BackgroundSimulator(SimulatorConfig(rate_limit=0)) as simulator:
        httpx.post(simulator.url + "/_sim/reset")
    """

    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimulatorConfig()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.app = create_app(self.config)
        self._server = uvicorn.Server(uvicorn_config(self.app, host, self.port))
        self._thread = threading.Thread(target=self._run, name=f"simulator:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def simulation(self) -> Simulation:
        """The live state, for tests that need to look inside; only read it while no request runs."""
        simulation: Simulation = self.app.state.simulation
        return simulation

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout_s: float = 10.0) -> BackgroundSimulator:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()

    def __enter__(self) -> BackgroundSimulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
