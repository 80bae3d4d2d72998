Lua not really bytecode
