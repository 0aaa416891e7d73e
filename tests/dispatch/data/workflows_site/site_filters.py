"""A site's Dispatcher filter, as zocalo's filter plugins are written:
``(message, parameters) -> (message, parameters)``.  It adds a parameter
the recipes use, and refuses a request that asks it to."""


def tag(message, parameters):
    if parameters.get("refuse"):
        raise ValueError("this site refuses the request")
    parameters["site"] = "tagged by the site filter"
    return message, parameters
