connections = {}
