"""The execution gate: a cache clear never overlaps a model call."""
import threading
import time

from serving import gate


def test_clear_waits_for_calls_in_flight_and_holds_new_ones_back():
  execution = gate.ExecutionGate()
  events = []
  in_call, release_call = threading.Event(), threading.Event()
  clearing = threading.Event()

  def slow_call():
    with execution.call():
      events.append("call 1 starts")
      in_call.set()
      release_call.wait(10)
      events.append("call 1 ends")

  def clear():
    with execution.exclusive():
      clearing.set()
      events.append("clear")
      time.sleep(0.2)  # a call arriving now must wait
      events.append("clear ends")

  def late_call():
    clearing.wait(10)
    with execution.call():
      events.append("call 2")

  first = threading.Thread(target=slow_call)
  first.start()
  assert in_call.wait(10)
  threads = [threading.Thread(target=clear), threading.Thread(target=late_call)]
  for t in threads:
    t.start()
  time.sleep(0.2)
  assert "clear" not in events  # still waiting for call 1
  release_call.set()
  for t in [first] + threads:
    t.join(10)
  assert events == ["call 1 starts", "call 1 ends", "clear", "clear ends",
                    "call 2"]


def test_calls_share_the_gate():
  execution = gate.ExecutionGate()
  inside = threading.Barrier(3, timeout=10)
  met = []

  def call():
    with execution.call():
      inside.wait()  # all three inside at once, or the barrier breaks
      met.append(True)

  threads = [threading.Thread(target=call) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(10)
  assert len(met) == 3
