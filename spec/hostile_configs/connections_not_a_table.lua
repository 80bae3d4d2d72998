connections = 5
