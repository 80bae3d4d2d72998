-- A fixed-seed slice of the fuzz target (spec/support/fuzz.lua; `make fuzz`
-- runs it for longer under ASan and UBSan): random arguments to every
-- public function neither crash, hang, raise non-messages nor print the
-- password.
local fuzz = dofile("spec/support/fuzz.lua")

describe("the public API under random arguments", function()
  it("survives a fixed-seed slice of the fuzz target", function()
    fuzz.ensure_role()
    local n, failures = fuzz.run(20261126, 400, 60)
    assert.are.same({}, failures)
    assert.are.equal(400, n)
  end)
end)
