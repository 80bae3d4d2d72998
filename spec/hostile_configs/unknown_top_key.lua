connections = { a = { kind = "source" } }
conections = {}
