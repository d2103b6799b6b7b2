"""FedAvg over a model with an embedding table of ``embedding-mib`` MiB and a small dense layer."""
