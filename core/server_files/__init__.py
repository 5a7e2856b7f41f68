"""Files on the server that users may name: the BDA_SERVER_PATHS rules and the typed inputs read from them."""
