"""The steps that read a message: build it once, check safety, understand the case, choose the next move."""
