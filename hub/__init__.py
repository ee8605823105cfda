"""The hub: a service-desk partner-exchange and integration hub."""

import warnings

import authlib.deprecate

__all__ = ["__version__"]

__version__ = "0.1.0"

# authlib announces that its JOSE module will move to the separate joserfc package; the module is
# the one this project is built on and keeps working, so operators need not see the notice on
# every start. (authlib installs an "always" filter on import; ours goes in front of it.)
warnings.filterwarnings(
    "ignore",
    message="authlib.jose module is deprecated",
    category=authlib.deprecate.AuthlibDeprecationWarning,
)
