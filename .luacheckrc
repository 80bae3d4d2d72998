std = "max"
files["spec"] = { std = "+busted" }
max_line_length = 110
