error({ "not a string" })
