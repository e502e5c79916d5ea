"""What every package stands on: typed settings, logging, errors-as-data, leader election.
Also the text rules shared by every input (names, numbers as clients write them)."""
