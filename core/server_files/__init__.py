"""Files on the server that users may name: the BDA_SERVER_PATHS rules (``paths``), the files, folders, globs and
weights typed on a page (``typed_paths``), and xBD folders (``xbd_folders``)."""
