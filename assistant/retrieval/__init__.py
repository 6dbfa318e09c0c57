"""Finding departments: the department index (dense + lexical) and the ranking."""
