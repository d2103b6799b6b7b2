"""The ClientApp: a NumPyClient on this data owner's dataset, or on a partition in a plain simulation."""

from flwr.client import ClientApp
from flwr.client import NumPyClient
from flwr.common import Context

from diabetes_like.task import evaluate
from diabetes_like.task import fit
from diabetes_like.task import load_flwr_data
from diabetes_like.task import load_syftbox_dataset


class DiabetesClient(NumPyClient):
    def __init__(self, train, test, epochs: int) -> None:
        self.train, self.test, self.epochs = train, test, epochs

    def fit(self, parameters, config):
        weights = fit(parameters, *self.train, epochs=self.epochs)
        print(f"trained on {len(self.train[1])} rows")
        return weights, len(self.train[1]), {}

    def evaluate(self, parameters, config):
        loss, accuracy = evaluate(parameters, *self.test)
        print(f"evaluated on {len(self.test[1])} rows: loss {loss:.4f}, accuracy {accuracy:.4f}")
        return loss, len(self.test[1]), {"accuracy": accuracy}


def client_fn(context: Context):
    from syft_flwr.utils import run_syft_flwr

    if not run_syft_flwr():
        print("running as a plain Flower simulation: a partition of the pooled data")
        train, test = load_flwr_data(context.node_config["partition-id"], context.node_config["num-partitions"])
    else:
        print("running with syft_flwr: this data owner's dataset")
        train, test = load_syftbox_dataset()
    return DiabetesClient(train, test, int(context.run_config["local-epochs"])).to_client()


app = ClientApp(client_fn=client_fn)
