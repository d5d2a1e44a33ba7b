"""ceb-gateway: the message gateway for China Customs cross-border e-commerce (CEB) declarations."""

__version__ = "0.1.0"
