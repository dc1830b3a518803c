"""Generator families behind one interface (see ``base.py``)."""

from synthmed.generators.base import (
    ConditionalGenerator,
    GeneratorConfig,
    get_generator_class,
    list_generators,
    load_generator,
    make_generator,
    register_generator,
)

__all__ = [
    "ConditionalGenerator",
    "GeneratorConfig",
    "get_generator_class",
    "list_generators",
    "load_generator",
    "make_generator",
    "register_generator",
]
