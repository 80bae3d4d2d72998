connections = { a = { kind = "source" } }
disable_rules = { 5 }
