from videonl.benchmark.__main__ import main


def test_nonlocal_benchmark_reports_each_implementation(capsys):
    main(["nonlocal", "--shapes", "32f-res4", "--batches", "1", "--repeat", "1", "--implementations", "plain", "fast"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["shape", "batch", "implementation"]
    plain, fast = (line.split() for line in lines[1:3])
    assert plain[:3] == ["32f-res4", "1", "plain"] and fast[:3] == ["32f-res4", "1", "fast"]
    assert all(float(value) > 0 for value in plain[3:5] + fast[3:5])
    assert "vs plain:" in lines[2]
