"""Knowledge base: parse uploaded documents into structural blocks and cut them into retrieval chunks."""
