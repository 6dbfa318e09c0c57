"""Writing the reply: templates by default, a language model's phrasing when one is configured."""
