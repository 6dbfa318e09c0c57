"""Finding departments: the embedder seam, the department index (dense + lexical) and the ranking."""
