"""Backbones and their companions: the named-size registry, text encoders, the autoencoder,
and the text-to-image bundle that ties them together."""
