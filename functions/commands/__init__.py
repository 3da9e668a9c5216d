"""``commands``: remote control of devices. The queue and audit log of what each device is
to receive (:mod:`functions.commands.queue`), and the function that records the devices'
answers in it (:mod:`functions.commands.handler`)."""
