"""Methods: each one's whole idea in its own file, over the shared base."""

from mucon.methods.base import Method
from mucon.methods.clmr import CLMR
from mucon.methods.pemr import PEMR
from mucon.methods.semisupcon import SemiSupCon

METHODS: dict[str, type[Method]] = {"clmr": CLMR, "pemr": PEMR, "semisupcon": SemiSupCon}


def method_class(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}") from None


__all__ = ["CLMR", "METHODS", "Method", "PEMR", "SemiSupCon", "method_class"]
