"""A local Sinch Conversation API + KakaoTalk simulator: the oracle of the KakaoTalk rules for tests and benchmarks.

It implements the channel rules itself (from reference/kakaotalk-channel.txt) and imports nothing from
`worker` or `producers`.
"""

from simulator.config import SimulatorConfig
from simulator.runner import BackgroundSimulator, serve
from simulator.server import create_app
from simulator.signing import sign, signature_headers, verify
from simulator.templates import Template, TemplateRegistry

__all__ = [
    "BackgroundSimulator",
    "SimulatorConfig",
    "Template",
    "TemplateRegistry",
    "create_app",
    "serve",
    "sign",
    "signature_headers",
    "verify",
]
