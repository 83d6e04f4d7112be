"""The scanner: package analyzers over a container's files, their results, and package URLs."""
