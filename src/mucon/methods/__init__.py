"""Methods: each one's whole idea in its own file, over the shared base."""

from mucon.methods.base import Method
from mucon.methods.clmr import CLMR
from mucon.methods.cola import COLA
from mucon.methods.composed import Composed
from mucon.methods.mscol import MSCOL
from mucon.methods.myna import Myna
from mucon.methods.pemr import PEMR
from mucon.methods.semisupcon import SemiSupCon
from mucon.user_code import import_named, is_import_path

# Registration order is the demo's order: the baselines first, then the methods built on them.
METHODS: dict[str, type[Method]] = {"clmr": CLMR, "cola": COLA, "mscol": MSCOL, "pemr": PEMR, "semisupcon": SemiSupCon,
                                    "myna": Myna}
# Built in but none of the six: a method whose parts the config names (not a demo method).
COMPOSED = "composed"


def method_class(name: str) -> type[Method]:
    """A built-in method by name, or the user's own ``Method`` subclass by import path (``my_lab.methods:MyMethod``)."""
    if is_import_path(name):
        return import_named(name, Method, "method.name")
    if name == COMPOSED:
        return Composed
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted([*METHODS, COMPOSED]))}") from None


__all__ = ["CLMR", "COLA", "COMPOSED", "METHODS", "Composed", "MSCOL", "Method", "Myna", "PEMR", "SemiSupCon",
           "method_class"]
