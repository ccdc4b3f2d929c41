"""The base of errors that are the user's to fix or know about, as opposed to bugs."""


class UserFacingError(Exception):
    """Raised with a message written for the member who ran the command.

    The command tree's error handler shows `str(error)` to the member as it is; anything that is
    not a UserFacingError is logged with a reference and shown as a generic apology.
    """
