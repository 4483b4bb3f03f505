"""What the tests that compare our errors with PyTorch's share."""


def raised(action):
    """The type of the exception ``action()`` raises, or None when it raises nothing."""
    try:
        action()
    except Exception as error:  # noqa: BLE001 (the type is what is compared)
        return type(error)
    return None
