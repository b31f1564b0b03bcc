"""Task families: load, prompt, extract answer, grade."""
