connections = {
  a = { kind = "source", password = "S3cr3t-never-printed } }
