connections = {
  a = { kind = "source", host = "x" 
