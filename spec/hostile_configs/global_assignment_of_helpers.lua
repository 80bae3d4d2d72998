env = nil
connections = { a = { kind = "source", password = env("X") } }
