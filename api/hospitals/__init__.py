"""The hospital noun: a client of the hospital document (and its sub-hospitals), whose
rules on top of a client's are in ``service``."""
