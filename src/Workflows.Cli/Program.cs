Console.WriteLine("wf");
