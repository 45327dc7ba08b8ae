"""Training and loading of the fastText and KenLM models the filters use."""
