"""Where models and data come from: model files, keras.applications, factories (``models``), arrays, HDF5 and
image folders (``datasets``), and the offline demo (``demo``)."""
