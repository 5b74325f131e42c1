"""A method, encoder or head of the user's own, named in a config by import path (``my_lab.methods:MyMethod``).

Only the paths a config names are ever imported: a checkpoint's config is plain data, so loading one runs
no code but what its config names. A checkpoint records each path with the version of the package that
holds it, so that a checkpoint whose code is missing or changed says which package it needs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

from mucon.config import ConfigError, RunConfig


class UserCodeError(ConfigError):
    """A config's import path that cannot be used: no such module or attribute, or not the right base class."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


def is_import_path(name: str) -> bool:
    """Whether a config name is an import path ``module:attribute`` rather than a built-in's name."""
    return ":" in name


def import_named(path: str, base: type, kind: str) -> type:
    """The class ``module:attribute`` names, checked to be a subclass of ``base``; else a one-line
    ``UserCodeError`` naming ``kind`` (``method.name``, ...) and the path."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise UserCodeError(f"{kind} {path!r}: an import path is module:Class, e.g. my_lab.methods:MyMethod", path)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ModuleNotFoundError, or whatever the user's module raised while importing
        raise UserCodeError(f"{kind} {path!r}: cannot import {module_name} ({type(error).__name__}: {error})",
                            path) from error
    found = getattr(module, attribute, None)
    if found is None:
        raise UserCodeError(f"{kind} {path!r}: module {module_name} has no {attribute}", path)
    if not (isinstance(found, type) and issubclass(found, base)):
        raise UserCodeError(f"{kind} {path!r}: {attribute} is not a subclass of {base.__module__}.{base.__qualname__}",
                            path)
    return found


def package_of(path: str) -> str:
    """The top-level package of an import path: ``my_lab`` of ``my_lab.methods:MyMethod``."""
    return path.partition(":")[0].split(".")[0]


def package_version(path: str) -> str:
    """The version of the package holding ``path``'s module: its installed distribution's, else the top
    package's ``__version__``, else "unknown" (a folder on sys.path)."""
    top = package_of(path)
    for distribution in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(sys.modules.get(top), "__version__", "unknown"))


def recorded_code(config: RunConfig) -> dict[str, str]:
    """``{import path: package version}`` of the user's code a run config names, for its checkpoints."""
    names = (config.method_name, config.encoder.name, config.head.name, config.method.get("chain"))
    return {name: package_version(name) for name in names if isinstance(name, str) and is_import_path(name)}
