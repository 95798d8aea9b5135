

def test_to_slots_shares_one_slot_per_position_and_keeps_plain_values():
    from rayflow.core.template import NodeRef, Slot, SlotRun, slot, to_slots

    index = {("a", None): 0, ("b", None): 1, ("c", 2): 100}
    args = (NodeRef("a"), 3, "x", None, NodeRef("c", 2), [NodeRef("a"), NodeRef("b")], {"k": NodeRef("b")})
    out = to_slots(args, index)
    assert out == (Slot(0), 3, "x", None, Slot(100), SlotRun(0, 2), {"k": Slot(1)})
    assert out[0] is slot(0) and out[6]["k"] is slot(1)   # one object per position
    assert slot(5000) == Slot(5000) and slot(5000) is slot(5000)
    assert to_slots({}, index) == {} and to_slots(NodeRef("b"), index) is slot(1)
