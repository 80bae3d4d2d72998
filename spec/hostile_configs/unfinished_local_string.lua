local token = "S3cr3t-in-a-local-never-printed
connections = { a = { kind = "source" } }
