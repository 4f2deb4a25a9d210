"""Channel-agnostic conversation core: a turn is a pipeline of small stages over one ``Turn`` object."""
