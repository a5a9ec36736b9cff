"""Report layer: pictures of the graph and of runs. matplotlib loads lazily."""
